"""Where reports come from besides the API: issues opened on GitHub (``github``)."""
