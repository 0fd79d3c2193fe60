//! Compiles the C++ kernel (csrc/ccl/ccl.hpp behind the extern "C" shim) into the library.

fn main() {
    println!("cargo:rerun-if-changed=src/ccl_shim.cpp");
    println!("cargo:rerun-if-changed=../ccl/ccl.hpp");
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .opt_level(3)
        .include("../ccl")
        .file("src/ccl_shim.cpp")
        .warnings(true)
        .compile("abvoc_ccl_shim");
}
