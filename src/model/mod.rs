//! Pure quoting math (placeholder until the model lands).
