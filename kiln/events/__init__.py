"""Events (CloudEvents 1.0) recorded in the catalog, streamed by ``kiln events`` and sent to webhooks."""
