"""IAM of the gateway: the action of every operation (``actions``), policy documents and the system policies
(``policies``), the decision rules (``evaluation``), password hashing (``passwords``), the storage of sub-users,
access keys and policies (``store``) and the authorization dependency (``authorization``). See ``docs/iam.md``."""
