"""HTTP and websocket APIs."""
