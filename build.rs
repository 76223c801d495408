//! Links the `nslab` binary as a position-dependent executable. Every node runs this
//! binary as its init; in a PIE the dynamic loader writes relocations into hundreds of
//! kilobytes of read-only data at each start, making them private copies in every init.
//! Without PIE they stay clean pages of the file, shared by all the inits.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bin=nslab=-no-pie");
    }
}
