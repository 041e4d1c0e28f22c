-- Surveys domain of customer_features: one row per customer with a survey response on or
-- before as_of. Definitions: int_customer_surveys.yml.
with

as_of as (
    select * from {{ ref('int_as_of') }}
),

surveys as (
    select * from {{ ref('stg_surveys') }}
),

responses as (
    select
        surveys.*,
        row_number() over (
            partition by surveys.customer_id, (surveys.nps is null)
            order by surveys.responded_at desc, surveys.response_id desc
        ) as nps_recency_rank
    from surveys
    cross join as_of
    where cast(surveys.responded_at as date) <= as_of.as_of_date
),

survey_stats as (
    select
        customer_id,
        max(case when nps is not null and nps_recency_rank = 1 then nps end) as nps_latest,
        avg(cast(nps as {{ type_double() }})) as nps_avg,
        avg(cast(csat as {{ type_double() }})) as csat_avg
    from responses
    group by customer_id
)

select
    customer_id,
    nps_latest,
    {{ round_double('nps_avg', 6) }} as nps_avg,
    {{ round_double('csat_avg', 6) }} as csat_avg,
    case
        when nps_latest is null then null
        when nps_latest >= 9 then 'promoter'
        when nps_latest >= 7 then 'passive'
        else 'detractor'
    end as nps_class
from survey_stats
order by customer_id
