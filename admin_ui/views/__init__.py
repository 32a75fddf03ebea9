"""Page handlers of the admin UI, one module per area."""
