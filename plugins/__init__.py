"""ganlab's built-in tricks, one module each (installed as the package `ganlab_plugins`)."""
