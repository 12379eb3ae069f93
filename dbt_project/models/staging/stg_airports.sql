with

source as (

    select * from {{ source('validated', 'airports') }}

),

renamed as (

    select
        faa,
        name as airport_name,
        lat,
        lon,
        alt,
        tz as utc_offset_hours,
        dst,
        tzone

    from source

)

select * from renamed
