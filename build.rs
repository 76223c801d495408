//! Links the `nslab` binary as a position-dependent executable. Every node runs this
//! binary as its init; in a PIE the dynamic loader writes relocations into hundreds of
//! kilobytes of read-only data at each start, making them private copies in every init.
//! Without PIE they stay clean pages of the file, shared by all the inits.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // The static build (.cargo/config.toml) is made position-dependent there, by
    // `relocation-model=static`; `crt-static` alone would give a static PIE.
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && !features.split(',').any(|f| f == "crt-static")
    {
        println!("cargo:rustc-link-arg-bin=nslab=-no-pie");
    }
}
