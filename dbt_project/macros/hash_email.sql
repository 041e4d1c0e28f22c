{#- Pseudonymise an email: sha256(salt || lower(trim(email))) as lower-case hex.
    NULL or blank email -> NULL. Dispatched so another warehouse can implement it. -#}
{% macro hash_email(column) -%}
    {{ return(adapter.dispatch('hash_email', 'referral_segments')(column)) }}
{%- endmacro %}

{% macro email_hash_salt_literal() -%}
    '{{ var("email_hash_salt") | replace("'", "''") }}'
{%- endmacro %}

{% macro default__hash_email(column) -%}
    case when nullif(trim({{ column }}), '') is null then null
         else lower(sha2({{ email_hash_salt_literal() }} || lower(trim({{ column }})), 256)) end
{%- endmacro %}

{% macro duckdb__hash_email(column) -%}
    case when nullif(trim({{ column }}), '') is null then null
         else sha256({{ email_hash_salt_literal() }} || lower(trim({{ column }}))) end
{%- endmacro %}

{% macro postgres__hash_email(column) -%}
    case when nullif(trim({{ column }}), '') is null then null
         else encode(sha256(convert_to({{ email_hash_salt_literal() }} || lower(trim({{ column }})), 'UTF8')), 'hex') end
{%- endmacro %}

{% macro bigquery__hash_email(column) -%}
    case when nullif(trim({{ column }}), '') is null then null
         else to_hex(sha256(concat({{ email_hash_salt_literal() }}, lower(trim({{ column }}))))) end
{%- endmacro %}
