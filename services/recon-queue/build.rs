//! Compiles `proto/` into Rust with protox (pure Rust: no `protoc` binary needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = "../../proto";
    println!("cargo:rerun-if-changed={proto_root}");
    let descriptors = protox::compile(
        [
            "helcim_recon/v1/webhook_envelope.proto",
            "helcim_recon/v1/attribution_alert.proto",
        ],
        [proto_root],
    )?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
