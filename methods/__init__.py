"""Neural methods, one file each; configs in configs/<method>.yaml."""
