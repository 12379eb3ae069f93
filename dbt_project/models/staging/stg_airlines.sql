with

source as (

    select * from {{ source('validated', 'airlines') }}

),

renamed as (

    select
        carrier,
        name as airline_name

    from source

)

select * from renamed
