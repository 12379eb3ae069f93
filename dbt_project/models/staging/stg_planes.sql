with

source as (

    select * from {{ source('validated', 'planes') }}

),

renamed as (

    select
        tailnum,
        year as manufactured_year,
        type as plane_type,
        manufacturer,
        model,
        engines,
        seats,
        speed,
        engine as engine_type

    from source

)

select * from renamed
