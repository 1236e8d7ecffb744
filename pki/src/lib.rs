//! bosun-pki: the Kubernetes control-plane PKI as kubeadm makes it.
//!
//! This crate is pure: bytes in, bytes out. It never touches the filesystem.
