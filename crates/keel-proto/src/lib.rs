//! etcd v3 API protos and generated code (work in progress).
