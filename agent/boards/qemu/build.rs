//! Puts memory.x where the linker (cortex-m-rt's link.x) looks for it, and an empty device.x:
//! the board's interrupt vectors are its own (src/usart.rs), with no device crate to name them.
fn main() {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(out.join("memory.x"), include_bytes!("memory.x")).expect("memory.x");
    std::fs::write(out.join("device.x"), "").expect("device.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
}
