"""The exchange as a catalog: every gear and boutique with its versions, read from specs and manifests."""
