"""The sections of the ``proxy_ext:`` schema, one module per group; import them from
:mod:`proxy_ext.config`, the one public import path (it re-exports every name)."""
