"""Calendar feeds: each user's private, rotatable RFC 5545 feed of their appointments."""
