//! The OCR aligner's tree building, as workloads/ocr/aligner.py writes it: grouping symbols into
//! fractions and roots (recursively), the pair features its network reads, and the left-to-right
//! scan that turns the network's decisions into (parent, relation, probability) per symbol.
//!
//! Every step keeps the Python's order and float64 arithmetic (stable sorts, the same
//! expressions), so the features and relations equal the staged pipeline's; the tests in
//! tests/workloads/ocr/test_aligner_op.py hold them against it. Symbol indices are an image's
//! own (0..n), as the staged pipeline numbers them.

use std::collections::{HashMap, HashSet};

pub const GEOMETRY: usize = 10;
pub const CLASSES_OUT: usize = 3; // the network decides between right, sup and sub

/// Relation codes written per symbol; the Python side reads them by these positions.
pub const START: i64 = 0;
pub const RIGHT: i64 = 1;
pub const SUP: i64 = 2;
pub const SUB: i64 = 3;
pub const NUM: i64 = 4;
pub const DEN: i64 = 5;
pub const BODY: i64 = 6;
const DECIDED: [i64; CLASSES_OUT] = [RIGHT, SUP, SUB];

/// Which classes play which part, from the node's attributes.
pub struct Classes {
    pub count: i64,
    pub bar: i64,
    pub root: i64,
    pub flat: Vec<i64>,
    /// Structure levels grouped; deeper bars and roots are plain symbols (aligner.MAX_DEPTH).
    pub max_depth: i64,
}

impl Classes {
    /// One-hot slots per element kind: every class, then "fraction group" and "root group".
    pub fn kinds(&self) -> usize {
        self.count as usize + 2
    }

    pub fn features(&self) -> usize {
        GEOMETRY + 2 * self.kinds()
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Sym,
    Frac,
    Sqrt,
}

type BoxF = [f64; 4];
/// A holder's parts before grouping: (relation, symbol indices), num then den, or body.
type Parts = Vec<(i64, Vec<usize>)>;
/// Script candidates of the current base: (position, probability).
type Scripts = Vec<(usize, f32)>;

struct Element {
    head: usize,
    kind: Kind,
    bx: BoxF,
    parts: Vec<(i64, Region)>, // num then den, or body
}

pub struct Region {
    elements: Vec<Element>,
    scale: f64,
    first_row: Vec<usize>, // pair (i, j)'s feature row is first_row[i] + j - i - 1
}

fn center(b: &BoxF) -> (f64, f64) {
    ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0)
}

/// The median of a short list, as aligner._median: the mean of the two middle values.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Splits symbols into a row of elements, recursing into fractions and roots (`depth`: how
/// many structures hold this row; at `max_depth` none is formed).
pub fn group(
    indices: &[usize],
    boxes: &[BoxF],
    classes: &[i64],
    c: &Classes,
    depth: i64,
) -> Region {
    let mut holders: Vec<usize> = indices
        .iter()
        .copied()
        .filter(|&i| depth < c.max_depth && (classes[i] == c.bar || classes[i] == c.root))
        .collect();
    let width = |i: usize| boxes[i][2] - boxes[i][0];
    holders.sort_by(|&a, &b| width(b).total_cmp(&width(a))); // stable: widest first
    let mut claimed: HashSet<usize> = HashSet::new();
    let mut structures: HashMap<usize, (Kind, Parts)> = HashMap::new();
    for &h in &holders {
        if claimed.contains(&h) {
            continue;
        }
        let hb = boxes[h];
        let free: Vec<usize> = indices
            .iter()
            .copied()
            .filter(|&j| j != h && !claimed.contains(&j) && !structures.contains_key(&j))
            .collect();
        if classes[h] == c.root {
            let body: Vec<usize> = free
                .into_iter()
                .filter(|&j| {
                    let (cx, cy) = center(&boxes[j]);
                    hb[0] + 0.15 * (hb[3] - hb[1]) < cx && cx < hb[2] && hb[1] < cy && cy < hb[3]
                })
                .collect();
            claimed.extend(&body);
            structures.insert(h, (Kind::Sqrt, vec![(BODY, body)]));
            continue;
        }
        let hcy = (hb[1] + hb[3]) / 2.0;
        let span = free.into_iter().filter(|&j| {
            let cx = center(&boxes[j]).0;
            hb[0] <= cx && cx <= hb[2]
        });
        let (mut above, mut below) = (Vec::new(), Vec::new());
        for j in span {
            let cy = center(&boxes[j]).1;
            if cy < hcy {
                above.push(j);
            } else if cy > hcy {
                below.push(j);
            }
        }
        if !above.is_empty() && !below.is_empty() {
            claimed.extend(&above);
            claimed.extend(&below);
            structures.insert(h, (Kind::Frac, vec![(NUM, above), (DEN, below)]));
        }
    }
    let mut elements = Vec::new();
    for &i in indices {
        if claimed.contains(&i) {
            continue;
        }
        match structures.remove(&i) {
            Some((kind, parts)) => {
                let mut bx = boxes[i];
                for &j in parts.iter().flat_map(|(_, idx)| idx) {
                    let b = boxes[j];
                    bx = [
                        bx[0].min(b[0]),
                        bx[1].min(b[1]),
                        bx[2].max(b[2]),
                        bx[3].max(b[3]),
                    ];
                }
                let parts = parts
                    .into_iter()
                    .map(|(rel, idx)| (rel, group(&idx, boxes, classes, c, depth + 1)))
                    .collect();
                elements.push(Element {
                    head: i,
                    kind,
                    bx,
                    parts,
                });
            }
            None => elements.push(Element {
                head: i,
                kind: Kind::Sym,
                bx: boxes[i],
                parts: vec![],
            }),
        }
    }
    elements.sort_by(|a, b| {
        a.bx[0]
            .total_cmp(&b.bx[0])
            .then(a.bx[1].total_cmp(&b.bx[1]))
    });
    let mut heights: Vec<f64> = elements
        .iter()
        .filter(|e| e.kind == Kind::Sym && !c.flat.contains(&classes[e.head]))
        .map(|e| e.bx[3] - e.bx[1])
        .collect();
    if heights.is_empty() {
        heights = elements.iter().map(|e| e.bx[3] - e.bx[1]).collect();
    }
    if heights.is_empty() {
        heights.push(1.0);
    }
    let first_row = vec![0; elements.len()];
    Region {
        elements,
        scale: median(heights).max(1.0),
        first_row,
    }
}

fn kind_index(el: &Element, classes: &[i64], c: &Classes) -> usize {
    match el.kind {
        Kind::Frac => c.count as usize,
        Kind::Sqrt => c.count as usize + 1,
        Kind::Sym => classes[el.head] as usize,
    }
}

/// Geometry of a candidate element relative to the current base, in units of the row's symbol
/// height, clipped to ±6, then both elements' kinds one-hot (aligner.pair_features).
fn pair_row(b: &Element, e: &Element, r: f64, classes: &[i64], c: &Classes, out: &mut [f32]) {
    let (b4, c4) = (b.bx, e.bx);
    let bh = (b4[3] - b4[1]).max(1.0);
    let ch = (c4[3] - c4[1]).max(1.0);
    let geo = [
        ((c4[1] + c4[3]) - (b4[1] + b4[3])) / 2.0 / r,
        (c4[3] - b4[3]) / r,
        (c4[1] - b4[1]) / r,
        ch / r,
        bh / r,
        (c4[0] - b4[2]) / r,
        (c4[2] - c4[0]) / r,
        (b4[2] - b4[0]) / r,
        (ch / bh).ln(),
        (c4[3] - (b4[1] + b4[3]) / 2.0) / r,
    ];
    for (slot, value) in out.iter_mut().zip(geo) {
        *slot = value.clamp(-6.0, 6.0) as f32;
    }
    out[GEOMETRY + kind_index(b, classes, c)] = 1.0;
    out[GEOMETRY + c.kinds() + kind_index(e, classes, c)] = 1.0;
}

/// Numbers every pair (i < j) of this region and its sub-regions from `next` on, in the order
/// aligner.all_pair_features numbers them (i's pairs, then i's sub-regions, then i + 1), and
/// records where each element's pairs start; with `out`, also appends each pair's feature row
/// (AlignerScan needs only the numbering).
pub fn pair_rows(
    region: &mut Region,
    classes: &[i64],
    c: &Classes,
    next: &mut usize,
    mut out: Option<&mut Vec<f32>>,
) {
    let width = c.features();
    let n = region.elements.len();
    for i in 0..n {
        region.first_row[i] = *next;
        *next += n - i - 1;
        if let Some(rows) = out.as_deref_mut() {
            for j in i + 1..n {
                let at = rows.len();
                rows.resize(at + width, 0.0);
                let els = &region.elements;
                pair_row(&els[i], &els[j], region.scale, classes, c, &mut rows[at..]);
            }
        }
        for (_, part) in region.elements[i].parts.iter_mut() {
            pair_rows(part, classes, c, next, out.as_deref_mut());
        }
    }
}

/// (parent, relation, probability) per symbol of one image.
pub type Relations = Vec<(i64, i64, f32)>;

/// Reads a region left to right with the network's softmax rows (`probs`, three per pair),
/// writing each symbol's relation (aligner.scan with table_decider).
pub fn scan(region: &Region, probs: &[f32], out: &mut Relations, parent: i64, rel: i64) {
    let all: Vec<usize> = (0..region.elements.len()).collect();
    scan_row(region, &all, probs, out, parent, rel, 1.0);
}

fn decide(region: &Region, base: usize, k: usize, probs: &[f32]) -> (i64, f32) {
    let row = region.first_row[base] + k - base - 1;
    let p = &probs[row * CLASSES_OUT..(row + 1) * CLASSES_OUT];
    let mut best = 0;
    for (i, v) in p.iter().enumerate() {
        if *v > p[best] {
            best = i; // the first of equal maxima, as numpy's argmax
        }
    }
    (DECIDED[best], p[best])
}

fn scan_row(
    region: &Region,
    positions: &[usize],
    probs: &[f32],
    out: &mut Relations,
    parent: i64,
    rel: i64,
    prob: f32,
) {
    let Some((&first, rest)) = positions.split_first() else {
        return;
    };
    let mut base = first;
    place(region, base, probs, out, parent, rel, prob);
    let (mut sup, mut sub): (Scripts, Scripts) = (vec![], vec![]);
    for &k in rest {
        let (r, p) = decide(region, base, k, probs);
        if r == RIGHT {
            flush(region, base, &sup, &sub, probs, out);
            place(
                region,
                k,
                probs,
                out,
                region.elements[base].head as i64,
                RIGHT,
                p,
            );
            base = k;
            sup.clear();
            sub.clear();
        } else if r == SUP {
            sup.push((k, p));
        } else {
            sub.push((k, p));
        }
    }
    flush(region, base, &sup, &sub, probs, out);
}

fn place(
    region: &Region,
    pos: usize,
    probs: &[f32],
    out: &mut Relations,
    parent: i64,
    rel: i64,
    prob: f32,
) {
    let el = &region.elements[pos];
    out[el.head] = (parent, rel, prob);
    for (part_rel, part) in &el.parts {
        scan(part, probs, out, el.head as i64, *part_rel);
    }
}

fn flush(
    region: &Region,
    base: usize,
    sup: &[(usize, f32)],
    sub: &[(usize, f32)],
    probs: &[f32],
    out: &mut Relations,
) {
    let head = region.elements[base].head as i64;
    for (rel, items) in [(SUB, sub), (SUP, sup)] {
        if let Some(&(_, p)) = items.first() {
            let positions: Vec<usize> = items.iter().map(|&(k, _)| k).collect();
            scan_row(region, &positions, probs, out, head, rel, p);
        }
    }
}
