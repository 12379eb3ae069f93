{#
    Fails on every combination of the given columns that occurs more than once: the primary
    key test for tables keyed by several columns, without pulling in dbt_utils.
#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

select
    {{ combination_of_columns | join(', ') }},
    count(*) as n_rows
from {{ model }}
group by {{ combination_of_columns | join(', ') }}
having count(*) > 1

{% endtest %}
