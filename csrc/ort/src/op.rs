//! What every abvoc custom op shares: errors as `OrtStatus`, tensor access, and one
//! `OrtCustomOp` table per op built from a small descriptor.
//!
//! ONNX Runtime calls an op's callbacks with a pointer to its `OrtCustomOp`; each op here is an
//! `Op` whose first field is that table (`repr(C)`), so the callbacks read the op's name, types
//! and kernel factory back from the same pointer instead of one set of callbacks per op.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;

use ort_sys::{
    ONNXTensorElementDataType as ElemType, ORT_API_VERSION, OrtApi, OrtCustomOp,
    OrtCustomOpInputOutputCharacteristic as Characteristic, OrtErrorCode, OrtKernelContext,
    OrtKernelInfo, OrtMemType, OrtStatus, OrtStatusPtr, OrtTensorTypeAndShapeInfo, OrtValue,
};

/// Why a call failed: a status ONNX Runtime returned (passed on as is) or our own message.
pub enum Error {
    Ort(OrtStatusPtr),
    Message(OrtErrorCode, String),
}

impl Error {
    pub fn invalid(msg: String) -> Self {
        Error::Message(OrtErrorCode::ORT_INVALID_ARGUMENT, msg)
    }

    pub fn into_status(self, api: &OrtApi) -> *mut OrtStatus {
        match self {
            Error::Ort(status) => status.0,
            Error::Message(code, msg) => {
                let text = CString::new(msg.replace('\0', " ")).unwrap_or_default();
                unsafe { (api.CreateStatus)(code, text.as_ptr()).0 }
            }
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

pub fn check(status: OrtStatusPtr) -> Result<()> {
    if status.0.is_null() {
        Ok(())
    } else {
        Err(Error::Ort(status))
    }
}

/// The ORT type-and-shape info of a value, released when dropped.
pub struct TypeAndShape<'a> {
    api: &'a OrtApi,
    info: *mut OrtTensorTypeAndShapeInfo,
}

impl<'a> TypeAndShape<'a> {
    pub unsafe fn of(api: &'a OrtApi, value: *const OrtValue) -> Result<Self> {
        let mut info = ptr::null_mut();
        check(unsafe { (api.GetTensorTypeAndShape)(value, &mut info) })?;
        Ok(TypeAndShape { api, info })
    }

    pub fn element_type(&self) -> Result<ElemType> {
        let mut out = ElemType::ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
        check(unsafe { (self.api.GetTensorElementType)(self.info, &mut out) })?;
        Ok(out)
    }

    pub fn dims(&self) -> Result<Vec<i64>> {
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

pub fn type_name(t: ElemType) -> String {
    let full = format!("{t:?}");
    full.trim_start_matches("ONNX_TENSOR_ELEMENT_DATA_TYPE_")
        .to_lowercase()
}

/// One call's kernel context, with typed access to inputs and outputs.
pub struct Context<'a> {
    pub api: &'a OrtApi,
    pub ctx: *mut OrtKernelContext,
}

impl Context<'_> {
    pub fn input(&self, index: usize) -> Result<*const OrtValue> {
        let mut value = ptr::null();
        check(unsafe { (self.api.KernelContext_GetInput)(self.ctx, index, &mut value) })?;
        Ok(value)
    }

    /// Input `index` as a slice of T with its shape; the element type was checked by ORT
    /// against the op's declared input type.
    pub fn input_slice<T>(&self, index: usize) -> Result<(&[T], Vec<i64>)> {
        let value = self.input(index)?;
        let dims = unsafe { TypeAndShape::of(self.api, value) }?.dims()?;
        let len: i64 = dims.iter().product();
        if len == 0 {
            return Ok((&[], dims));
        }
        let mut data = ptr::null_mut();
        // Inputs are only read; the C API has no const accessor before API 23.
        check(unsafe { (self.api.GetTensorMutableData)(value.cast_mut(), &mut data) })?;
        Ok((
            unsafe { std::slice::from_raw_parts(data.cast::<T>(), len as usize) },
            dims,
        ))
    }

    /// Output `index` of the given shape, and its data.
    pub fn output<T>(&self, index: usize, dims: &[i64]) -> Result<*mut T> {
        let mut value = ptr::null_mut();
        check(unsafe {
            (self.api.KernelContext_GetOutput)(
                self.ctx,
                index,
                dims.as_ptr(),
                dims.len(),
                &mut value,
            )
        })?;
        let mut data = ptr::null_mut();
        check(unsafe { (self.api.GetTensorMutableData)(value, &mut data) })?;
        Ok(data.cast())
    }

    /// Output `index` filled from `values` (its length must match the shape).
    pub fn output_from<T: Copy>(&self, index: usize, dims: &[i64], values: &[T]) -> Result<()> {
        let out = self.output::<T>(index, dims)?;
        if !values.is_empty() {
            unsafe { ptr::copy_nonoverlapping(values.as_ptr(), out, values.len()) };
        }
        Ok(())
    }
}

/// The attributes a kernel reads when ONNX Runtime creates it.
pub struct Attributes<'a> {
    pub api: &'a OrtApi,
    pub info: *const OrtKernelInfo,
}

impl Attributes<'_> {
    pub fn int(&self, name: &CStr) -> Result<i64> {
        let mut out = 0i64;
        check(unsafe {
            (self.api.KernelInfoGetAttribute_int64)(self.info, name.as_ptr(), &mut out)
        })?;
        Ok(out)
    }

    pub fn ints(&self, name: &CStr) -> Result<Vec<i64>> {
        let mut size = 0usize;
        check(unsafe {
            (self.api.KernelInfoGetAttributeArray_int64)(
                self.info,
                name.as_ptr(),
                ptr::null_mut(),
                &mut size,
            )
        })?;
        let mut out = vec![0i64; size];
        check(unsafe {
            (self.api.KernelInfoGetAttributeArray_int64)(
                self.info,
                name.as_ptr(),
                out.as_mut_ptr(),
                &mut size,
            )
        })?;
        Ok(out)
    }
}

/// A kernel: made once per node, computed once per run (from several threads at once).
pub trait Kernel: Send + Sync {
    fn compute(&self, ctx: &Context) -> Result<()>;
}

/// How ONNX Runtime makes an op's kernel from the node's attributes.
pub type Make = fn(&Attributes) -> Result<Box<dyn Kernel>>;

/// One op: the table ONNX Runtime reads first, then what its callbacks look up.
#[repr(C)]
pub struct Op {
    table: OrtCustomOp,
    name: &'static CStr,
    inputs: &'static [ElemType],
    outputs: &'static [ElemType],
    make: Make,
}

// The table holds only function pointers and the descriptor only 'static data.
unsafe impl Sync for Op {}

const CPU: &CStr = c"CPUExecutionProvider";
const OP_VERSION: c_int = 1;

fn op_of<'a>(table: *const OrtCustomOp) -> &'a Op {
    unsafe { &*table.cast::<Op>() }
}

unsafe extern "system" fn op_name(op: *const OrtCustomOp) -> *const c_char {
    op_of(op).name.as_ptr()
}

unsafe extern "system" fn op_provider(_: *const OrtCustomOp) -> *const c_char {
    CPU.as_ptr()
}

unsafe extern "system" fn input_type(op: *const OrtCustomOp, index: usize) -> ElemType {
    op_of(op).inputs[index]
}

unsafe extern "system" fn output_type(op: *const OrtCustomOp, index: usize) -> ElemType {
    op_of(op).outputs[index]
}

unsafe extern "system" fn input_count(op: *const OrtCustomOp) -> usize {
    op_of(op).inputs.len()
}

unsafe extern "system" fn output_count(op: *const OrtCustomOp) -> usize {
    op_of(op).outputs.len()
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

/// What ORT holds per node: the API table and the op's kernel.
struct Instance {
    api: &'static OrtApi,
    name: &'static CStr,
    kernel: Box<dyn Kernel>,
}

fn guarded<T>(name: &CStr, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(Error::Message(
            OrtErrorCode::ORT_FAIL,
            format!(
                "abvoc::{}: the {what} panicked (a bug in csrc/ort)",
                name.to_string_lossy()
            ),
        ))
    })
}

unsafe extern "system" fn create_kernel(
    op: *const OrtCustomOp,
    api: *const OrtApi,
    info: *const OrtKernelInfo,
    kernel: *mut *mut c_void,
) -> OrtStatusPtr {
    // The table lives as long as the runtime that handed it over.
    let api: &'static OrtApi = unsafe { &*api };
    let op = op_of(op);
    let made = guarded(op.name, "kernel's creation", || {
        (op.make)(&Attributes { api, info })
    });
    OrtStatusPtr(match made {
        Ok(made) => {
            let instance = Instance {
                api,
                name: op.name,
                kernel: made,
            };
            unsafe { *kernel = Box::into_raw(Box::new(instance)).cast() };
            ptr::null_mut()
        }
        Err(err) => err.into_status(api),
    })
}

unsafe extern "system" fn compute(kernel: *mut c_void, ctx: *mut OrtKernelContext) -> OrtStatusPtr {
    let instance = unsafe { &*kernel.cast::<Instance>() };
    let context = Context {
        api: instance.api,
        ctx,
    };
    let result = guarded(instance.name, "kernel", || {
        instance.kernel.compute(&context)
    });
    OrtStatusPtr(match result {
        Ok(()) => ptr::null_mut(),
        Err(err) => err.into_status(instance.api),
    })
}

unsafe extern "system" fn destroy_kernel(kernel: *mut c_void) {
    drop(unsafe { Box::from_raw(kernel.cast::<Instance>()) });
}

impl Op {
    /// An op of the "abvoc" domain, version 1, on the CPU. ORT reads the table's fields up to
    /// `version` (17 here: the V2 kernel entry points and the opset range).
    pub const fn new(
        name: &'static CStr,
        inputs: &'static [ElemType],
        outputs: &'static [ElemType],
        make: Make,
    ) -> Self {
        Op {
            table: OrtCustomOp {
                version: ORT_API_VERSION,
                CreateKernel: None,
                GetName: Some(op_name),
                GetExecutionProviderType: Some(op_provider),
                GetInputType: Some(input_type),
                GetInputTypeCount: Some(input_count),
                GetOutputType: Some(output_type),
                GetOutputTypeCount: Some(output_count),
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
            },
            name,
            inputs,
            outputs,
            make,
        }
    }

    pub fn table(&'static self) -> *const OrtCustomOp {
        &self.table
    }
}
