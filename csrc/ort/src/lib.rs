//! ONNX Runtime custom-op library: `abvoc::ConnectedComponents` (version 1) over csrc/ccl.
//!
//! ONNX Runtime loads the library (`SessionOptions.register_custom_ops_library`) and calls
//! `RegisterCustomOps`, handing over its API table; the library links nothing of ONNX Runtime.
//! The node matches what the torch op's ONNX symbolic writes (workloads/ocr/torch_ops.py): one
//! input, the mask (H x W, bool or uint8); two outputs, labels (int32, H x W) and stats (int64,
//! N x 5: x0, y0, x1, y1 exclusive, area). N is known only after labelling, so the stats output
//! is requested from the kernel context once the C++ kernel has counted the components.
//!
//! Errors (a mask of another type or rank, a failed allocation, a panic) go back to ONNX
//! Runtime as an `OrtStatus` with a message; nothing unwinds across the C boundary.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;

use ort_sys::{
    ONNXTensorElementDataType as ElemType, ORT_API_VERSION, OrtApi, OrtApiBase, OrtCustomOp,
    OrtCustomOpDomain, OrtCustomOpInputOutputCharacteristic as Characteristic, OrtErrorCode,
    OrtKernelContext, OrtKernelInfo, OrtMemType, OrtSessionOptions, OrtStatus, OrtStatusPtr,
    OrtTensorTypeAndShapeInfo, OrtValue,
};

const DOMAIN: &CStr = c"abvoc";
const OP_NAME: &CStr = c"ConnectedComponents";
const OP_VERSION: c_int = 1;
const CPU: &CStr = c"CPUExecutionProvider";

type StatsOut = unsafe extern "C" fn(ctx: *mut c_void, n: i64) -> *mut i64;

unsafe extern "C" {
    // src/ccl_shim.cpp: the csrc/ccl kernel behind a C interface.
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

/// Why a call failed: a status ONNX Runtime returned (passed on as is) or our own message.
enum Error {
    Ort(OrtStatusPtr),
    Message(OrtErrorCode, String),
}

impl Error {
    fn invalid(msg: String) -> Self {
        Error::Message(OrtErrorCode::ORT_INVALID_ARGUMENT, msg)
    }

    fn into_status(self, api: &OrtApi) -> *mut OrtStatus {
        match self {
            Error::Ort(status) => status.0,
            Error::Message(code, msg) => {
                let text = CString::new(msg.replace('\0', " ")).unwrap_or_default();
                unsafe { (api.CreateStatus)(code, text.as_ptr()).0 }
            }
        }
    }
}

type Result<T> = std::result::Result<T, Error>;

fn check(status: OrtStatusPtr) -> Result<()> {
    if status.0.is_null() {
        Ok(())
    } else {
        Err(Error::Ort(status))
    }
}

/// The ORT type-and-shape info of a value, released when dropped.
struct TypeAndShape<'a> {
    api: &'a OrtApi,
    info: *mut OrtTensorTypeAndShapeInfo,
}

impl<'a> TypeAndShape<'a> {
    unsafe fn of(api: &'a OrtApi, value: *const OrtValue) -> Result<Self> {
        let mut info = ptr::null_mut();
        check(unsafe { (api.GetTensorTypeAndShape)(value, &mut info) })?;
        Ok(TypeAndShape { api, info })
    }

    fn element_type(&self) -> Result<ElemType> {
        let mut out = ElemType::ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
        check(unsafe { (self.api.GetTensorElementType)(self.info, &mut out) })?;
        Ok(out)
    }

    fn dims(&self) -> Result<Vec<i64>> {
        let mut count = 0usize;
        check(unsafe { (self.api.GetDimensionsCount)(self.info, &mut count) })?;
        let mut dims = vec![0i64; count];
        check(unsafe { (self.api.GetDimensions)(self.info, dims.as_mut_ptr(), count) })?;
        Ok(dims)
    }
}

impl Drop for TypeAndShape<'_> {
    fn drop(&mut self) {
        unsafe { (self.api.ReleaseTensorTypeAndShapeInfo)(self.info) }
    }
}

fn type_name(t: ElemType) -> String {
    let full = format!("{t:?}");
    full.trim_start_matches("ONNX_TENSOR_ELEMENT_DATA_TYPE_")
        .to_lowercase()
}

/// The kernel's state: the API table ONNX Runtime handed to CreateKernelV2.
struct Kernel {
    api: &'static OrtApi,
}

impl Kernel {
    /// Output `index` of the given shape, and its data.
    unsafe fn output<T>(
        &self,
        ctx: *mut OrtKernelContext,
        index: usize,
        dims: &[i64],
    ) -> Result<*mut T> {
        let mut value = ptr::null_mut();
        check(unsafe {
            (self.api.KernelContext_GetOutput)(ctx, index, dims.as_ptr(), dims.len(), &mut value)
        })?;
        let mut data = ptr::null_mut();
        check(unsafe { (self.api.GetTensorMutableData)(value, &mut data) })?;
        Ok(data.cast())
    }

    unsafe fn compute(&self, ctx: *mut OrtKernelContext) -> Result<()> {
        let api = self.api;
        let mut mask = ptr::null();
        check(unsafe { (api.KernelContext_GetInput)(ctx, 0, &mut mask) })?;
        let info = unsafe { TypeAndShape::of(api, mask) }?;
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
        let labels: *mut i32 = unsafe { self.output(ctx, 0, &dims) }?;
        if h == 0 || w == 0 {
            unsafe { self.output::<i64>(ctx, 1, &[0, cols]) }?;
            return Ok(());
        }
        let mut data = ptr::null_mut();
        // The input's bytes are only read; the C API has no const accessor before API 23.
        check(unsafe { (api.GetTensorMutableData)(mask.cast_mut(), &mut data) })?;
        let mut sink = StatsSink {
            kernel: self,
            ctx,
            cols,
            failed: None,
        };
        let mut error = [0 as c_char; 256];
        let n = unsafe {
            abvoc_ccl_label(
                data.cast(),
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
struct StatsSink<'a> {
    kernel: &'a Kernel,
    ctx: *mut OrtKernelContext,
    cols: i64,
    failed: Option<Error>,
}

unsafe extern "C" fn stats_out(sink: *mut c_void, n: i64) -> *mut i64 {
    let sink = unsafe { &mut *sink.cast::<StatsSink>() };
    match unsafe { sink.kernel.output::<i64>(sink.ctx, 1, &[n, sink.cols]) } {
        Ok(data) => data,
        Err(err) => {
            sink.failed = Some(err);
            ptr::null_mut()
        }
    }
}

// The OrtCustomOp callbacks. ORT reads the fields up to `version` (17 here: the V2 kernel
// entry points and the opset range); the input takes any type so that a wrong one reaches the
// kernel and gets a message, instead of a bare "type not supported" from the graph check.

unsafe extern "system" fn op_name(_: *const OrtCustomOp) -> *const c_char {
    OP_NAME.as_ptr()
}

unsafe extern "system" fn op_provider(_: *const OrtCustomOp) -> *const c_char {
    CPU.as_ptr()
}

unsafe extern "system" fn input_type(_: *const OrtCustomOp, _: usize) -> ElemType {
    ElemType::ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED
}

unsafe extern "system" fn output_type(_: *const OrtCustomOp, index: usize) -> ElemType {
    match index {
        0 => ElemType::ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32,
        _ => ElemType::ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64,
    }
}

unsafe extern "system" fn one(_: *const OrtCustomOp) -> usize {
    1
}

unsafe extern "system" fn two(_: *const OrtCustomOp) -> usize {
    2
}

unsafe extern "system" fn required(_: *const OrtCustomOp, _: usize) -> Characteristic {
    Characteristic::INPUT_OUTPUT_REQUIRED
}

unsafe extern "system" fn input_memory(_: *const OrtCustomOp, _: usize) -> OrtMemType {
    OrtMemType::OrtMemTypeDefault
}

unsafe extern "system" fn arity_one(_: *const OrtCustomOp) -> c_int {
    1
}

unsafe extern "system" fn op_version(_: *const OrtCustomOp) -> c_int {
    OP_VERSION
}

unsafe extern "system" fn create_kernel(
    _: *const OrtCustomOp,
    api: *const OrtApi,
    _: *const OrtKernelInfo,
    kernel: *mut *mut c_void,
) -> OrtStatusPtr {
    // The table lives as long as the runtime that handed it over.
    let api: &'static OrtApi = unsafe { &*api };
    unsafe { *kernel = Box::into_raw(Box::new(Kernel { api })).cast() };
    OrtStatusPtr(ptr::null_mut())
}

unsafe extern "system" fn compute(kernel: *mut c_void, ctx: *mut OrtKernelContext) -> OrtStatusPtr {
    let kernel = unsafe { &*kernel.cast::<Kernel>() };
    let result =
        catch_unwind(AssertUnwindSafe(|| unsafe { kernel.compute(ctx) })).unwrap_or_else(|_| {
            Err(Error::Message(
                OrtErrorCode::ORT_FAIL,
                "abvoc::ConnectedComponents: the kernel panicked (a bug in csrc/ort)".into(),
            ))
        });
    OrtStatusPtr(match result {
        Ok(()) => ptr::null_mut(),
        Err(err) => err.into_status(kernel.api),
    })
}

unsafe extern "system" fn destroy_kernel(kernel: *mut c_void) {
    drop(unsafe { Box::from_raw(kernel.cast::<Kernel>()) });
}

static OP: OrtCustomOp = OrtCustomOp {
    version: ORT_API_VERSION,
    CreateKernel: None,
    GetName: Some(op_name),
    GetExecutionProviderType: Some(op_provider),
    GetInputType: Some(input_type),
    GetInputTypeCount: Some(one),
    GetOutputType: Some(output_type),
    GetOutputTypeCount: Some(two),
    KernelCompute: None,
    KernelDestroy: Some(destroy_kernel),
    GetInputCharacteristic: Some(required),
    GetOutputCharacteristic: Some(required),
    GetInputMemoryType: Some(input_memory),
    GetVariadicInputMinArity: Some(arity_one),
    GetVariadicInputHomogeneity: Some(arity_one),
    GetVariadicOutputMinArity: Some(arity_one),
    GetVariadicOutputHomogeneity: Some(arity_one),
    CreateKernelV2: Some(create_kernel),
    KernelComputeV2: Some(compute),
    InferOutputShapeFn: None,
    GetStartVersion: Some(op_version),
    GetEndVersion: Some(op_version),
};

unsafe fn register(api: &OrtApi, options: *mut OrtSessionOptions) -> Result<()> {
    let mut domain: *mut OrtCustomOpDomain = ptr::null_mut();
    check(unsafe { (api.CreateCustomOpDomain)(DOMAIN.as_ptr(), &mut domain) })?;
    let added = check(unsafe { (api.CustomOpDomain_Add)(domain, &OP) })
        .and_then(|()| check(unsafe { (api.AddCustomOpDomain)(options, domain) }));
    if added.is_err() {
        unsafe { (api.ReleaseCustomOpDomain)(domain) };
    }
    // On success the domain is kept for the rest of the process: the options, and every
    // session made from them, point at it, and ORT tells the library nothing when the last of
    // them is gone (a few dozen bytes per registration).
    added
}

/// The entry point ONNX Runtime calls when the library is registered on session options.
///
/// # Safety
/// Called by ONNX Runtime with valid session options and its API base.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn RegisterCustomOps(
    options: *mut OrtSessionOptions,
    api_base: *const OrtApiBase,
) -> *mut OrtStatus {
    let base = unsafe { &*api_base };
    let api = unsafe { (base.GetApi)(ORT_API_VERSION) };
    if api.is_null() {
        // Too old a runtime for our table; every version's table starts with CreateStatus, so
        // version 1's still carries the message.
        let v1 = unsafe { (base.GetApi)(1) };
        if v1.is_null() {
            return ptr::null_mut();
        }
        let version = unsafe { CStr::from_ptr((base.GetVersionString)()) }.to_string_lossy();
        let msg = format!(
            "abvoc custom ops need ONNX Runtime API {ORT_API_VERSION} \
                           (ONNX Runtime 1.{ORT_API_VERSION} or newer); this is {version}"
        );
        return Error::Message(OrtErrorCode::ORT_FAIL, msg).into_status(unsafe { &*v1 });
    }
    let api = unsafe { &*api };
    match catch_unwind(AssertUnwindSafe(|| unsafe { register(api, options) })) {
        Ok(Ok(())) => ptr::null_mut(),
        Ok(Err(err)) => err.into_status(api),
        Err(_) => Error::Message(
            OrtErrorCode::ORT_FAIL,
            "abvoc custom ops: registration panicked".into(),
        )
        .into_status(api),
    }
}
