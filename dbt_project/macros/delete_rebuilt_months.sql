{#
    Pre-hook for an incremental run of a month-partitioned model: empties the months being
    rebuilt, so that rows dropped upstream since the last run (e.g. newly quarantined) leave
    the table too. delete+insert on the unique key alone only replaces rows that still exist.
#}
{% macro delete_rebuilt_months() -%}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where flight_month between '{{ env_var('DBT_START_MONTH', '0000-00') }}' and '{{ env_var('DBT_END_MONTH', '9999-99') }}'
    {%- endif -%}
{%- endmacro %}
