"""The register map YAML and the AXI4-Lite register bank built from it."""
