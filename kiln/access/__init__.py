"""Who may do what: API tokens with scopes (stored as HMACs), and the audit log of mutating calls."""
