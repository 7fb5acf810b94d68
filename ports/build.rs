//! Build script: with the `mana-hw` feature, compiles the rdma-core shim
//! (src/mana/hw/shim.c) and links libibverbs and libmana. Without it,
//! nothing is built.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "mana-hw")]
    mana_hw();
}

#[cfg(feature = "mana-hw")]
fn mana_hw() {
    // Cargo sets CARGO_FEATURE_<NAME> for enabled features; the cfg above is
    // the same test, made at compile time so `cc` is only needed then.
    if std::env::var_os("CARGO_FEATURE_MANA_HW").is_none() {
        return;
    }
    println!("cargo:rerun-if-changed=src/mana/hw/shim.c");
    cc::Build::new().file("src/mana/hw/shim.c").warnings(true).extra_warnings(true).compile("vrouter_mana_shim");
    println!("cargo:rustc-link-lib=dylib=ibverbs");
    println!("cargo:rustc-link-lib=dylib=mana");
}
