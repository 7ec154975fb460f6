//! Gives `containerd-shim-wasmedge-v1` an rpath to the libwasmedge it was
//! linked against (`WASMEDGE_LIB_DIR`, else `$WASMEDGE_DIR/lib`), since
//! containerd starts shims without LD_LIBRARY_PATH. A library installed in
//! the loader's default paths (/usr/local/lib after `ldconfig`) needs none.

fn main() {
    println!("cargo:rerun-if-env-changed=WASMEDGE_DIR");
    println!("cargo:rerun-if-env-changed=WASMEDGE_LIB_DIR");
    if std::env::var_os("CARGO_FEATURE_WASMEDGE").is_none() {
        return;
    }
    let lib_dir = std::env::var("WASMEDGE_LIB_DIR").ok().or_else(|| {
        std::env::var("WASMEDGE_DIR")
            .ok()
            .map(|dir| format!("{dir}/lib"))
    });
    if let Some(dir) = lib_dir {
        println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{dir}");
    }
}
