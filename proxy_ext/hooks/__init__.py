"""The extension's LiteLLM hooks. ``proxy_ext.glue.ProxyExtension`` delegates to these; they hold the
behaviour, proxy_ext.litellm_adapter holds every LiteLLM touch point they need."""

__all__: list[str] = []
