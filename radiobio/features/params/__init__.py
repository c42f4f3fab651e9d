"""Feature-extraction presets (``ct``, ``mr``, ``ibsi``) as PyRadiomics parameter YAML files."""
