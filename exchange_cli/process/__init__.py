"""`exchange process`: changed specs -> rootfs artifacts in the bucket -> manifests -> git, as one transaction."""
