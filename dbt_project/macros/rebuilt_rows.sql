{% macro rebuilt_rows(timestamp_column) -%}
    {#- The feature rows a build of DBT_START_MONTH..DBT_END_MONTH can change: those of its months,
        and of the 28 days after them, whose trailing windows reach back into them. A full build
        (the variables unset) covers every row. Rows outside were checked by the build that made
        them, so the brute-force tests recompute only these. -#}
    {{ timestamp_column }} >= cast('{{ env_var("DBT_START_MONTH", "0001-01") }}-01' as date)
    and {{ timestamp_column }} < cast('{{ env_var("DBT_END_MONTH", "9999-10") }}-01' as date) + interval 1 month + interval 28 days
{%- endmacro %}
