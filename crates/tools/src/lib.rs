//! Tools around the shim, for operators and for the test suite.
//!
//! Owns: [`oci_image`], writing an OCI image archive (`oci-layout`, one
//! uncompressed layer) that `ctr image import` loads, from a set of files.
//!
//! Leaves out: talking to containerd (tests and users run `ctr`).

pub mod oci_image;
