"""What needs an stsvend checkout: grants as code, the grants table, trust policies, the OpenAPI
document. Everything here starts from a `Checkout` (stsvend.checkout.checkout)."""
