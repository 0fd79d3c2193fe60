//! ONNX Runtime custom-op library, domain "abvoc" (version 1):
//!
//! - `ConnectedComponents` over csrc/ccl (src/ccl.rs);
//! - `AlignerFeatures` and `AlignerScan`, the OCR aligner's tree building (src/aligner_ops.rs).
//!
//! ONNX Runtime loads the library (`SessionOptions.register_custom_ops_library`) and calls
//! `RegisterCustomOps`, handing over its API table; the library links nothing of ONNX Runtime.
//! Errors (an input of another type or shape, a failed allocation, a panic) go back to ONNX
//! Runtime as an `OrtStatus` with a message; nothing unwinds across the C boundary.

mod aligner;
mod aligner_ops;
mod ccl;
mod op;

use std::ffi::CStr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;

use ort_sys::{
    ORT_API_VERSION, OrtApi, OrtApiBase, OrtCustomOpDomain, OrtErrorCode, OrtSessionOptions,
    OrtStatus,
};

use op::{Error, Op, Result, check};

const DOMAIN: &CStr = c"abvoc";
static OPS: [&Op; 3] = [&ccl::OP, &aligner_ops::FEATURES, &aligner_ops::SCAN];

unsafe fn register(api: &OrtApi, options: *mut OrtSessionOptions) -> Result<()> {
    let mut domain: *mut OrtCustomOpDomain = ptr::null_mut();
    check(unsafe { (api.CreateCustomOpDomain)(DOMAIN.as_ptr(), &mut domain) })?;
    let added = OPS
        .iter()
        .try_for_each(|op| check(unsafe { (api.CustomOpDomain_Add)(domain, op.table()) }))
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
