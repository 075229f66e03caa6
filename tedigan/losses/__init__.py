"""tedigan.losses"""
