"""IAM, as far as fastinvoke's own API is concerned: roles and their policies, the
credentials a function's environment gets for its role, and IAM's decision on a request
signed with them."""
