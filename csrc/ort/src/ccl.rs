//! `abvoc::ConnectedComponents` over csrc/ccl (through the extern "C" shim in ccl_shim.cpp).
//!
//! The node matches what the torch op's ONNX symbolic writes (workloads/ocr/torch_ops.py): one
//! input, the mask (H x W, bool or uint8); two outputs, labels (int32, H x W) and stats (int64,
//! N x 5: x0, y0, x1, y1 exclusive, area). N is known only after labelling, so the stats output
//! is requested from the kernel context once the C++ kernel has counted the components. The
//! input takes any type so that a wrong one reaches the kernel and gets a message, instead of a
//! bare "type not supported" from the graph check.

use std::ffi::{CStr, c_char, c_void};
use std::ptr;

use ort_sys::{ONNXTensorElementDataType as ElemType, OrtErrorCode};

use crate::op::{Attributes, Context, Error, Kernel, Op, Result, TypeAndShape, type_name};

type StatsOut = unsafe extern "C" fn(ctx: *mut c_void, n: i64) -> *mut i64;

unsafe extern "C" {
    fn abvoc_ccl_stat_cols() -> i64;
    fn abvoc_ccl_label(
        mask: *const u8,
        h: i64,
        w: i64,
        labels: *mut i32,
        stats_out: StatsOut,
        ctx: *mut c_void,
        error: *mut c_char,
        error_len: usize,
    ) -> i64;
}

pub static OP: Op = Op::new(
    c"ConnectedComponents",
    &[ElemType::ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED],
    &[
        ElemType::ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32,
        ElemType::ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64,
    ],
    make,
);

fn make(_: &Attributes) -> Result<Box<dyn Kernel>> {
    Ok(Box::new(Labelling))
}

struct Labelling;

impl Kernel for Labelling {
    fn compute(&self, ctx: &Context) -> Result<()> {
        let mask = ctx.input(0)?;
        let info = unsafe { TypeAndShape::of(ctx.api, mask) }?;
        let elem = info.element_type()?;
        if !matches!(
            elem,
            ElemType::ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL
                | ElemType::ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8
        ) {
            return Err(Error::invalid(format!(
                "abvoc::ConnectedComponents: the mask must be a bool or uint8 tensor, got {}",
                type_name(elem)
            )));
        }
        let dims = info.dims()?;
        if dims.len() != 2 {
            return Err(Error::invalid(format!(
                "abvoc::ConnectedComponents: the mask must be 2-D (H, W), got shape {dims:?}"
            )));
        }
        let (h, w) = (dims[0], dims[1]);
        let cols = unsafe { abvoc_ccl_stat_cols() };
        let labels: *mut i32 = ctx.output(0, &dims)?;
        if h == 0 || w == 0 {
            ctx.output::<i64>(1, &[0, cols])?;
            return Ok(());
        }
        let (data, _) = ctx.input_slice::<u8>(0)?;
        let mut sink = StatsSink {
            ctx,
            cols,
            failed: None,
        };
        let mut error = [0 as c_char; 256];
        let n = unsafe {
            abvoc_ccl_label(
                data.as_ptr(),
                h,
                w,
                labels,
                stats_out,
                (&raw mut sink).cast(),
                error.as_mut_ptr(),
                error.len(),
            )
        };
        if let Some(err) = sink.failed {
            return Err(err);
        }
        if n < 0 {
            let msg = unsafe { CStr::from_ptr(error.as_ptr()) }.to_string_lossy();
            return Err(Error::Message(
                OrtErrorCode::ORT_FAIL,
                format!("abvoc::ConnectedComponents: {msg}"),
            ));
        }
        Ok(())
    }
}

/// Where the C++ kernel asks for the stats output once it knows the component count.
struct StatsSink<'a, 'b> {
    ctx: &'a Context<'b>,
    cols: i64,
    failed: Option<Error>,
}

unsafe extern "C" fn stats_out(sink: *mut c_void, n: i64) -> *mut i64 {
    let sink = unsafe { &mut *sink.cast::<StatsSink>() };
    match sink.ctx.output::<i64>(1, &[n, sink.cols]) {
        Ok(data) => data,
        Err(err) => {
            sink.failed = Some(err);
            ptr::null_mut()
        }
    }
}
