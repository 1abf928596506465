"""Parents: where an image's root filesystem starts."""
