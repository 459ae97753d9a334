//! Host-side USB/IP client (tokio): being written.
