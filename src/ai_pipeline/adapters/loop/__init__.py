"""Where conversations with reporters, deliveries and replies are kept."""
