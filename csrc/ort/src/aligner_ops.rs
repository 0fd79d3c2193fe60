//! `abvoc::AlignerFeatures` and `abvoc::AlignerScan`: the aligner's tree building around its
//! network, so the whole OCR pipeline is one ONNX graph.
//!
//! Both take the recognized symbols of a batch: boxes (int64 K x 4: x0, y0, x1, y1 in their
//! image), classes (int64 K) and image index (int64 K, non-decreasing: each image's symbols
//! together, in its own order). AlignerFeatures groups each image's symbols and writes the pair
//! features (float32 P x F) the network reads; AlignerScan groups them again (cheap, and it
//! keeps the graph free of a tree-typed tensor) and reads the network's softmax rows (float32
//! P x 3: right, sup, sub) into parent (int64 K: a symbol index of the same image, -1 for the
//! first), relation (int64 K: start, right, sup, sub, num, den, body) and probability (float32
//! K). Attributes: `num_classes`, `bar_class`, `root_class`, `flat_classes` and `max_depth`.

use ort_sys::ONNXTensorElementDataType as ElemType;

use crate::aligner::{CLASSES_OUT, Classes, Region, Relations, group, pair_rows, scan};
use crate::op::{Attributes, Context, Error, Kernel, Op, Result};

const I64: ElemType = ElemType::ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
const F32: ElemType = ElemType::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;

pub static FEATURES: Op = Op::new(c"AlignerFeatures", &[I64, I64, I64], &[F32], make_features);
pub static SCAN: Op = Op::new(
    c"AlignerScan",
    &[I64, I64, I64, F32],
    &[I64, I64, F32],
    make_scan,
);

fn classes_of(attrs: &Attributes, op: &str) -> Result<Classes> {
    let c = Classes {
        count: attrs.int(c"num_classes")?,
        bar: attrs.int(c"bar_class")?,
        root: attrs.int(c"root_class")?,
        flat: attrs.ints(c"flat_classes")?,
        max_depth: attrs.int(c"max_depth")?,
    };
    let known = 0..c.count;
    if c.count < 1 || !known.contains(&c.bar) || !known.contains(&c.root) {
        return Err(Error::invalid(format!(
            "abvoc::{op}: num_classes must be positive and bar_class and root_class among them, \
             got {}, {} and {}",
            c.count, c.bar, c.root
        )));
    }
    Ok(c)
}

fn make_features(attrs: &Attributes) -> Result<Box<dyn Kernel>> {
    Ok(Box::new(Features(classes_of(attrs, "AlignerFeatures")?)))
}

fn make_scan(attrs: &Attributes) -> Result<Box<dyn Kernel>> {
    Ok(Box::new(Scan(classes_of(attrs, "AlignerScan")?)))
}

/// One image's symbols: where they start in the batch, and their grouping.
struct Image {
    start: usize,
    count: usize,
    region: Region,
}

/// Reads the three symbol inputs, checks them and groups each image's symbols.
fn images<'a>(ctx: &'a Context, c: &Classes, op: &str) -> Result<(&'a [i64], Vec<Image>)> {
    let (boxes, box_dims) = ctx.input_slice::<i64>(0)?;
    let (classes, class_dims) = ctx.input_slice::<i64>(1)?;
    let (image, image_dims) = ctx.input_slice::<i64>(2)?;
    let k = class_dims.first().copied().unwrap_or(-1);
    if box_dims != [k, 4] || class_dims.len() != 1 || image_dims != [k] {
        return Err(Error::invalid(format!(
            "abvoc::{op}: boxes must be K x 4, classes and image index K, got {box_dims:?}, \
             {class_dims:?} and {image_dims:?}"
        )));
    }
    if let Some(bad) = classes.iter().find(|&&x| x < 0 || x >= c.count) {
        return Err(Error::invalid(format!(
            "abvoc::{op}: class {bad} is outside 0..{} (num_classes)",
            c.count
        )));
    }
    if image.windows(2).any(|w| w[1] < w[0]) {
        return Err(Error::invalid(format!(
            "abvoc::{op}: the image index must not decrease (each image's symbols together)"
        )));
    }
    let mut out = Vec::new();
    let mut start = 0;
    while start < image.len() {
        let count = image[start..]
            .iter()
            .take_while(|&&i| i == image[start])
            .count();
        let own: Vec<[f64; 4]> = boxes[4 * start..4 * (start + count)]
            .chunks_exact(4)
            .map(|b| [b[0] as f64, b[1] as f64, b[2] as f64, b[3] as f64])
            .collect();
        let idx: Vec<usize> = (0..count).collect();
        let region = group(&idx, &own, &classes[start..start + count], c, 0);
        out.push(Image {
            start,
            count,
            region,
        });
        start += count;
    }
    Ok((classes, out))
}

/// Numbers every image's pairs, image after image, as the staged pipeline's one batch does,
/// appending their feature rows to `out` when given; returns the pair count.
fn number_pairs(
    c: &Classes,
    classes: &[i64],
    images: &mut [Image],
    mut out: Option<&mut Vec<f32>>,
) -> usize {
    let mut next = 0;
    for im in images.iter_mut() {
        let own = &classes[im.start..im.start + im.count];
        pair_rows(&mut im.region, own, c, &mut next, out.as_deref_mut());
    }
    next
}

struct Features(Classes);

impl Kernel for Features {
    fn compute(&self, ctx: &Context) -> Result<()> {
        let (classes, mut images) = images(ctx, &self.0, "AlignerFeatures")?;
        let mut features = Vec::new();
        let pairs = number_pairs(&self.0, classes, &mut images, Some(&mut features));
        ctx.output_from(0, &[pairs as i64, self.0.features() as i64], &features)
    }
}

struct Scan(Classes);

impl Kernel for Scan {
    fn compute(&self, ctx: &Context) -> Result<()> {
        let (classes, mut images) = images(ctx, &self.0, "AlignerScan")?;
        let pairs = number_pairs(&self.0, classes, &mut images, None);
        let (probs, prob_dims) = ctx.input_slice::<f32>(3)?;
        if prob_dims != [pairs as i64, CLASSES_OUT as i64] {
            return Err(Error::invalid(format!(
                "abvoc::AlignerScan: probabilities must be {pairs} x {CLASSES_OUT} (one row per \
                 symbol pair AlignerFeatures writes), got {prob_dims:?}"
            )));
        }
        let k = classes.len();
        let (mut parent, mut relation, mut prob) = (vec![-1i64; k], vec![0i64; k], vec![1f32; k]);
        for im in &images {
            let mut own: Relations = vec![(-1, crate::aligner::START, 1.0); im.count];
            scan(&im.region, probs, &mut own, -1, crate::aligner::START);
            for (i, (p, r, q)) in own.into_iter().enumerate() {
                (
                    parent[im.start + i],
                    relation[im.start + i],
                    prob[im.start + i],
                ) = (p, r, q);
            }
        }
        ctx.output_from(0, &[k as i64], &parent)?;
        ctx.output_from(1, &[k as i64], &relation)?;
        ctx.output_from(2, &[k as i64], &prob)
    }
}
