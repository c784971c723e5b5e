"""Routes, one module per area; each exports `router`. Routes are thin: parse, call a service, answer."""
