//! Writes an OCI image layout archive with one layer: what `ctr image import`
//! takes. Written with `oci-spec`'s image types and the `tar` crate.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use oci_spec::image::{
    Config, ConfigBuilder, Descriptor, DescriptorBuilder, ImageConfigurationBuilder,
    ImageIndexBuilder, ImageManifestBuilder, MediaType, RootFsBuilder, SCHEMA_VERSION,
    Sha256Digest,
};
use sha2::{Digest, Sha256};

/// A file to put in the image: host path and its path in the image.
#[derive(Debug, Clone)]
pub struct ImageFile {
    pub source: PathBuf,
    pub target: String,
    /// Unix mode bits, e.g. 0o755.
    pub mode: u32,
}

/// What to build.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// Full reference, e.g. `docker.io/library/hello:latest`.
    pub name: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub files: Vec<ImageFile>,
    /// Empty folders to create, e.g. `/data`.
    pub dirs: Vec<String>,
    /// Symbolic links: (path in the image, link target as written).
    pub symlinks: Vec<(String, String)>,
    /// `os/arch`; containerd unpacks the host's platform by default.
    pub platform: (String, String),
}

impl ImageSpec {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            entrypoint: Vec::new(),
            cmd: Vec::new(),
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            files: Vec::new(),
            dirs: Vec::new(),
            symlinks: Vec::new(),
            platform: ("linux".into(), host_arch().into()),
        }
    }
}

/// The host's architecture in OCI terms.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

struct Blob {
    digest: String,
    bytes: Vec<u8>,
}

impl Blob {
    fn new(bytes: Vec<u8>) -> Self {
        Self {
            digest: hex::encode(Sha256::digest(&bytes)),
            bytes,
        }
    }

    fn descriptor(&self, media_type: MediaType) -> Result<Descriptor> {
        let digest: Sha256Digest = self.digest.parse().context("digest")?;
        Ok(DescriptorBuilder::default()
            .media_type(media_type)
            .digest(digest)
            .size(self.bytes.len() as u64)
            .build()?)
    }
}

/// Writes the archive for `spec` to `out`.
pub fn write_archive(spec: &ImageSpec, out: &Path) -> Result<()> {
    let layer = Blob::new(layer_tar(spec)?);
    let config = ImageConfigurationBuilder::default()
        .os(spec.platform.0.as_str())
        .architecture(spec.platform.1.as_str())
        .config(runtime_config(spec)?)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![format!("sha256:{}", layer.digest)])
                .build()?,
        )
        .build()?;
    let config = Blob::new(serde_json::to_vec(&config)?);
    let manifest = ImageManifestBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageManifest)
        .config(config.descriptor(MediaType::ImageConfig)?)
        .layers(vec![layer.descriptor(MediaType::ImageLayer)?])
        .build()?;
    let manifest = Blob::new(serde_json::to_vec(&manifest)?);
    let tag = spec
        .name
        .rsplit_once(':')
        .map(|(_, t)| t)
        .unwrap_or("latest");
    let mut manifest_desc = manifest.descriptor(MediaType::ImageManifest)?;
    manifest_desc.set_annotations(Some(HashMap::from([
        ("io.containerd.image.name".to_string(), spec.name.clone()),
        (
            "org.opencontainers.image.ref.name".to_string(),
            tag.to_string(),
        ),
    ])));
    let index = ImageIndexBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .manifests(vec![manifest_desc])
        .build()?;

    let file = std::fs::File::create(out).with_context(|| format!("create {}", out.display()))?;
    let mut archive = tar::Builder::new(file);
    append(
        &mut archive,
        "oci-layout",
        br#"{"imageLayoutVersion":"1.0.0"}"#,
        0o644,
    )?;
    append(
        &mut archive,
        "index.json",
        &serde_json::to_vec(&index)?,
        0o644,
    )?;
    for blob in [&layer, &config, &manifest] {
        append(
            &mut archive,
            &format!("blobs/sha256/{}", blob.digest),
            &blob.bytes,
            0o644,
        )?;
    }
    archive.into_inner()?.flush()?;
    Ok(())
}

fn runtime_config(spec: &ImageSpec) -> Result<Config> {
    let mut builder = ConfigBuilder::default().env(spec.env.clone());
    if !spec.entrypoint.is_empty() {
        builder = builder.entrypoint(spec.entrypoint.clone());
    }
    if !spec.cmd.is_empty() {
        builder = builder.cmd(spec.cmd.clone());
    }
    Ok(builder.build()?)
}

/// The layer: parent folders first, then each file, all owned by root.
fn layer_tar(spec: &ImageSpec) -> Result<Vec<u8>> {
    let mut layer = tar::Builder::new(Vec::new());
    let mut dirs: Vec<String> = spec
        .dirs
        .iter()
        .map(|d| d.trim_matches('/').to_string())
        .collect();
    for file in &spec.files {
        let mut parent = Path::new(file.target.trim_start_matches('/')).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.push(p.to_string_lossy().into_owned());
            parent = p.parent();
        }
    }
    dirs.sort();
    dirs.dedup();
    for dir in dirs.iter().filter(|d| !d.is_empty()) {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        layer.append_data(&mut header, format!("{dir}/"), std::io::empty())?;
    }
    for (path, target) in &spec.symlinks {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_mode(0o777);
        header.set_size(0);
        layer
            .append_link(&mut header, path.trim_start_matches('/'), target)
            .with_context(|| format!("symlink {path}"))?;
    }
    for file in &spec.files {
        let bytes = std::fs::read(&file.source)
            .with_context(|| format!("read {}", file.source.display()))?;
        append(
            &mut layer,
            file.target.trim_start_matches('/'),
            &bytes,
            file.mode,
        )?;
    }
    Ok(layer.into_inner()?)
}

fn append<W: Write>(
    archive: &mut tar::Builder<W>,
    path: &str,
    bytes: &[u8],
    mode: u32,
) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(mode);
    header.set_entry_type(tar::EntryType::Regular);
    archive
        .append_data(&mut header, path, bytes)
        .with_context(|| format!("append {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_archive_has_layout_index_and_blobs_that_match_their_digests() {
        let dir = tempfile::tempdir().expect("tempdir");
        let module = dir.path().join("m.wasm");
        std::fs::write(&module, b"\0asm\x01\0\0\0").expect("write");
        let mut spec = ImageSpec::new("docker.io/library/t:1");
        spec.entrypoint = vec!["/app/m.wasm".into()];
        spec.files.push(ImageFile {
            source: module,
            target: "/app/m.wasm".into(),
            mode: 0o755,
        });
        let out = dir.path().join("img.tar");
        write_archive(&spec, &out).expect("archive");

        let mut names = Vec::new();
        let mut archive = tar::Archive::new(std::fs::File::open(&out).expect("open"));
        for entry in archive.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let name = entry.path().expect("path").to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).expect("read");
            if let Some(digest) = name.strip_prefix("blobs/sha256/") {
                assert_eq!(hex::encode(Sha256::digest(&bytes)), digest);
            }
            if name == "index.json" {
                let text = String::from_utf8(bytes).expect("utf8");
                assert!(text.contains("docker.io/library/t:1"), "{text}");
            }
            names.push(name);
        }
        assert_eq!(names.len(), 5, "{names:?}");
        assert!(names.contains(&"oci-layout".to_string()));
    }
}
