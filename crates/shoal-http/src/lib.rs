//! shoal-http: the HTTP front end over the `shoal` facade (JSON API, Transmission RPC, web UI). Lands with the daemon issue.
