"""What contributors and maintainers change in an exchange: adding specs, removing entries."""
