"""The extension's LiteLLM hooks. ``proxy_ext.glue.ProxyExtension`` delegates to these; they hold the
behaviour, the glue holds every LiteLLM touch point they need."""
