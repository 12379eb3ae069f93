{#
    Midnight UTC of the UTC day holding a timestamptz, as a timestamptz.
    Spelled out rather than relying on the session TimeZone, which decides where
    date_trunc cuts days.
#}
{% macro utc_midnight(column) -%}
    timezone('UTC', date_trunc('day', timezone('UTC', {{ column }})))
{%- endmacro %}
