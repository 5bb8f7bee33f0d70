//! Multi-version key-value store (work in progress).
