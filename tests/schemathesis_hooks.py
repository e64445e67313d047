"""schemathesis hooks for tests/schemathesis.sh (SCHEMATHESIS_HOOKS=schemathesis_hooks).

JSON Schema's `integer` also admits a number with a zero fraction, such as `2.0`; the
API reads a quantity only when it is written as an integer (`2.0` is 400, see the
README), so a generated `2.0` is sent as `2`. Nothing else is changed.
"""
import schemathesis


@schemathesis.hook
def map_case(context, case):
    body = case.body
    if isinstance(body, dict):
        quantity = body.get("quantity")
        if isinstance(quantity, float) and quantity.is_integer():
            body["quantity"] = int(quantity)
    return case
