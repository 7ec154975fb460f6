//! `edgeshim-oci`: packs files (a Wasm module, say) into an OCI image archive
//! for `ctr image import`.
//!
//! ```text
//! edgeshim-oci --name docker.io/library/hello:latest \
//!   --file hello.wasm:/hello.wasm --entrypoint /hello.wasm -o hello.tar
//! ```

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Parser;
use edgeshim_tools::oci_image::{ImageFile, ImageSpec, write_archive};

#[derive(Parser)]
#[command(about = "Pack files into an OCI image archive for `ctr image import`")]
struct Args {
    /// Image reference, e.g. docker.io/library/hello:latest
    #[arg(long)]
    name: String,
    /// HOST_PATH:IMAGE_PATH; repeat for more files
    #[arg(long = "file", required = true)]
    files: Vec<String>,
    /// Entrypoint words; repeat for more
    #[arg(long)]
    entrypoint: Vec<String>,
    /// Default arguments; repeat for more
    #[arg(long)]
    cmd: Vec<String>,
    /// KEY=VALUE; repeat for more
    #[arg(long)]
    env: Vec<String>,
    /// Empty folders to create in the image
    #[arg(long)]
    dir: Vec<String>,
    /// LINK_PATH:TARGET symbolic links; repeat for more
    #[arg(long)]
    symlink: Vec<String>,
    /// Output archive
    #[arg(short, long)]
    output: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut spec = ImageSpec::new(&args.name);
    spec.entrypoint = args.entrypoint;
    spec.cmd = args.cmd;
    spec.env.extend(args.env);
    spec.dirs = args.dir;
    for link in &args.symlink {
        let Some((path, target)) = link.split_once(':') else {
            bail!("--symlink {link:?}: expected LINK_PATH:TARGET");
        };
        spec.symlinks.push((path.into(), target.into()));
    }
    for file in &args.files {
        let Some((source, target)) = file.split_once(':') else {
            bail!("--file {file:?}: expected HOST_PATH:IMAGE_PATH");
        };
        spec.files.push(ImageFile {
            source: source.into(),
            target: target.into(),
            mode: 0o755,
        });
    }
    write_archive(&spec, &args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    println!("{}", args.output.display());
    Ok(())
}
