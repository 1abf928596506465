"""Distribution: publishing recorded image versions to registries, object stores, directories and AMIs.

``spec`` holds the recipe's ``distribution:`` models; ``base`` the destination plug-in contract; one
module per destination kind; ``run`` the job that preflights, publishes and records each target.
"""
