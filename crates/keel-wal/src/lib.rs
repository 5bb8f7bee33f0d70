//! Write-ahead log and snapshot files (work in progress).
