//! bosun-config: kubeadm.k8s.io/v1beta3 and v1beta4 configuration files.
//!
//! This crate is pure: it parses text handed to it and never touches the filesystem.
